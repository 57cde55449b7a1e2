#!/usr/bin/env python3
"""Writes the seed corpus of pagesim's fuzz targets into fuzz/corpus/<target>/.

The encodings follow the decoders in fuzz/src/targets.rs (see fuzz/README.md). Inputs come
from the spec's §10 fixture and vectors (tests/data/vmsa_*.txt) and the maps/smaps
listings in src/linux/maps_text/testdata. Run from anywhere: `python3 fuzz/make_seeds.py`.
"""

import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def u8(v):
    return struct.pack("<B", v & 0xFF)


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ----- walk ---------------------------------------------------------------------------

FIXTURE_TCR = 0x0000_0005_8010_0010
RAM = 0x4000_0000
# TTBR1's tables (0x4010_0000..0x4010_3fff in the spec) move to 0x4000_a000.. so that the
# whole fixture fits in 56 KiB of RAM; output addresses are unchanged.
T1_OLD, T1_NEW = 0x4010_0000, 0x4000_A000


def reloc(a):
    return a - T1_OLD + T1_NEW if T1_OLD <= a < T1_OLD + 0x4000 else a


def fixture():
    words = []
    for line in open(os.path.join(ROOT, "tests", "data", "vmsa_fixture.txt")):
        if line.startswith("#") or not line.strip():
            continue
        pa, v = (int(x, 16) for x in line.split())
        oa = v & 0x0000_FFFF_FFFF_F000
        if v & 3 == 3 and T1_OLD <= oa < T1_OLD + 0x4000:
            v = (v & ~0x0000_FFFF_FFFF_F000) | reloc(oa)
        words.append((reloc(pa), v))
    return words


def vectors():
    out = []
    for line in open(os.path.join(ROOT, "tests", "data", "vmsa_vectors.txt")):
        if line.startswith("#") or not line.strip():
            continue
        f = [x.strip() for x in line.split(" | ")]
        el, kind = f[2].split()
        out.append((f[0], int(f[1], 16), el, kind, f[3]))
    return out


def config(tokens):
    """Registers and the PAN flag for a vector's Config column."""
    regs = dict(tcr=FIXTURE_TCR, sctlr=1, ttbr0=RAM, ttbr1=T1_NEW, mair=0xFF)
    pan = False
    bits = dict(HA=39, HD=40, TBI0=37, TBI1=38, TBID0=51, EPD0=7, EPD1=23, HPD0=41)
    for t in tokens.split():
        if t == "-":
            pass
        elif t in bits:
            regs["tcr"] |= 1 << bits[t]
        elif t == "WXN":
            regs["sctlr"] |= 1 << 19
        elif t == "PAN":
            pan = True
        elif t == "IPS=40b":
            regs["tcr"] = (regs["tcr"] & ~(7 << 32)) | (2 << 32)
        elif t.startswith("T0SZ="):
            regs["tcr"] = (regs["tcr"] & ~0x3F) | int(t[5:])
        elif t.startswith("TTBR0="):
            regs["ttbr0"] = int(t[6:], 16)
        else:
            raise ValueError(t)
    return regs, pan


def walk_input(regs, accesses, words, cpu=0, features=0, flags=0, pages=14, be=False):
    """accesses: (va, access_byte, race_kind, race_arg)."""
    out = u8(cpu) + u16(features) + u8(flags) + u8(pages - 1)
    for k in ("tcr", "sctlr", "ttbr0", "ttbr1", "mair"):
        out += u64(regs[k])
    base = [0x4000_0000, 0, 0x1000, 0x8000_0000, 0x1_0000_0000][(flags >> 3) & 7]
    out += u8(len(words))
    for pa, v in words:
        if be:
            v = int.from_bytes(v.to_bytes(8, "little"), "big")
        out += u16((pa - base) // 8) + u64(v)
    out += u8(len(accesses))
    for va, b, rk, ra in accesses:
        out += u64(va) + u8(b) + u8(rk) + u8(ra)
    return out


def access_byte(el, kind, pan=False):
    b = {"R": 0, "W": 1, "X": 2}[kind]
    if el == "EL0":
        b |= 4
    if pan:
        b |= 8
    return b


def walk_seeds():
    words = fixture()
    groups = {}
    for vid, va, el, kind, cfg in vectors():
        regs, pan = config(cfg)
        key = tuple(sorted(regs.items()))
        groups.setdefault(key, []).append((vid, va, access_byte(el, kind, pan)))
    n = 0
    for key, vs in groups.items():
        regs = dict(key)
        for i in range(0, len(vs), 16):
            chunk = vs[i : i + 16]
            acc = [(va, b, 0, 0) for _, va, b in chunk]
            name = "fixture_%s" % "_".join(v for v, _, _ in chunk[:3])
            write("walk", name, walk_input(regs, acc, words))
            n += 1
    # The QEMU variant of the HA/HD vectors, the same as AT instructions, and a walk whose
    # dirty update races with another agent flipping the descriptor.
    hahd = dict(tcr=FIXTURE_TCR | (3 << 39), sctlr=1, ttbr0=RAM, ttbr1=T1_NEW, mair=0xFF)
    pages = [0x5000, 0x6000, 0xA000, 0x9000, 0x600000, 0x140000000, 0xFFFFFFFF80001FF0]
    acc = [(va, b, 0, 0) for va in pages for b in (0, 1, 5, 2)][:16]
    write("walk", "fixture_hahd_qemu", walk_input(hahd, acc, words, cpu=4))
    at_acc = [(va, 3 | (op << 4), 0, 0) for va in pages[:3] for op in range(6)][:16]
    write("walk", "fixture_hahd_at", walk_input(hahd, at_acc, words))
    race = [(0x6000, 5, 0xA1, 10), (0x6000, 5, 0xA5, 1), (0xA000, 1, 0xA2, 0),
            (0x5000, 0, 0xA3, 0), (0x5000, 0, 0xAD, 20), (0x600000, 0, 0xA1, 1),
            (0x9000, 0, 0xA5, 7)]
    write("walk", "fixture_hahd_races", walk_input(hahd, race, words))
    # Big-endian table walks (SCTLR_EL1.EE) over the byte-swapped fixture.
    be = dict(hahd, sctlr=1 | (1 << 25))
    acc = [(va, b, 0, 0) for va in (0x1ABC, 0x5000, 0x6000, 0x40001234, 0xFFFFFFFF80001FF0)
           for b in (0, 1, 5)][:16]
    write("walk", "fixture_big_endian", walk_input(be, acc, words, be=True))
    # A plain Armv8.0 core, and the MMU off.
    write("walk", "fixture_v8_0", walk_input(hahd, acc[:8], words, cpu=1))
    off = dict(hahd, sctlr=0)
    acc = [(0x1234, 0, 0, 0), (0x4000_0000, 2, 0, 0), (0xFF00_0000_0000_1000, 1, 0, 0),
           (0x0010_0000_0000_0003, 0x31, 0, 0)]
    write("walk", "mmu_off", walk_input(off, acc, []))
    # 64 KiB granule, 52-bit output (FEAT_LPA), self-referencing table at RAM base 0.
    tcr64 = 16 | (1 << 14) | (16 << 16) | (3 << 30) | (6 << 32)
    regs = dict(tcr=tcr64, sctlr=1, ttbr0=0, ttbr1=0, mair=0xFF44)
    w64 = [(0, 0x403), (8, 0x0008_0000_2000_0701 | (0x3 << 12)), (16, 0x0000_0000_0001_0743)]
    acc = [(0x0, 0, 0, 0), (0x1_0000, 0, 0, 0), (0x4_0000_0000, 1, 0, 0), (0x2_0000, 0x12, 0, 0)]
    write("walk", "granule_64k_lpa", walk_input(regs, acc, w64, flags=1 << 3, pages=16))
    # 16 KiB granule with LPA2 (DS = 1): 52-bit VA, start level 0 with two entries.
    tcr16 = 12 | (2 << 14) | (17 << 16) | (1 << 30) | (6 << 32) | (1 << 59)
    regs = dict(tcr=tcr16, sctlr=1, ttbr0=0x1000, ttbr1=0, mair=0xFF)
    w16 = [(0x1000, 0x4003), (0x4000, 0x4403), (0x4008, 0x8000_0000_0401 | (3 << 8))]
    acc = [(0x0, 0, 0, 0), (0x2000_0000, 0, 0, 0), (0x8_0000_0000_0000, 0, 0, 0)]
    write("walk", "granule_16k_lpa2", walk_input(regs, acc, w16, flags=1 << 3, pages=8))
    # 4 KiB granule with LPA2: T0SZ = 12 starts at level -1.
    tcr4 = 12 | (16 << 16) | (2 << 30) | (6 << 32) | (1 << 59) | (1 << 39)
    regs = dict(tcr=tcr4, sctlr=1, ttbr0=0x1000, ttbr1=0, mair=0xFF)
    w4 = [(0x1000, 0x2003), (0x2000, 0x3003), (0x3000, 0x4003), (0x4000, 0x5003),
          (0x5000, 0x8000_0703 | (1 << 8)), (0x2008, 0x1_0000_0001)]
    acc = [(0x0, 0, 0, 0), (0x1000, 1, 0, 0), (0x8000_0000_0000, 0, 0, 0)]
    write("walk", "granule_4k_lpa2_level_minus1", walk_input(regs, acc, w4, flags=1 << 3, pages=8))
    return n


# ----- mmu_ops ------------------------------------------------------------------------


def map_op(sel, page, pages, pa_page, attrs):
    return u8(0) + u8(sel) + u16(page) + u16(pages - 1) + u16(pa_page) + u16(attrs)


def unmap_op(sel, page, pages):
    return u8(2) + u8(sel) + u16(page) + u16(pages - 1)


def protect_op(sel, page, pages, set_bits, clear_bits):
    return u8(3) + u8(sel) + u16(page) + u16(pages - 1) + u16(set_bits) + u16(clear_bits)


def switch_op(p):
    return u8(4) + u8(p)


def translate_op(sel, page, off, access):
    return u8(5) + u8(sel) + u16(page) + u16(off) + u8(access)


def tlbi_op(kind, page, asid_sel, length, xt=0):
    return u8(7) + u8(kind) + u16(page) + u8(asid_sel) + u16(length) + u64(xt)


def fail_op(nth):
    return u8(8) + u8(nth - 1)


def hog_op(b):
    return u8(9) + u8(b)


def blocks_op(b):
    return u8(10) + u8(b)


def check_op():
    return u8(11) + u8(0x80)


def bad_op(sel, which, va, length, pa, attrs):
    return u8(11) + u8((sel & 3) | (which << 2)) + u64(va) + u64(length) + u64(pa) + u64(attrs)


# Attribute bits of the model (see MODEL_ATTRS): 4 = AP[1] (EL0), 5 = AP[2] (RO),
# 8 = "no AF" for maps, 11 = PXN, 12 = UXN; 0..2 = AttrIndx (4, 6, 7 are Device).
EL0, RO, NOAF, PXN, UXN = 1 << 4, 1 << 5, 1 << 8, 1 << 11, 1 << 12


def mmu_seeds():
    # 4 KiB granule, one process and a kernel half, blocks on.
    ops = b"".join([
        map_op(0x80, 0, 512, 0, EL0),            # a 2 MiB block
        map_op(0x00, 700, 20, 9000, EL0 | RO),    # pages
        translate_op(0, 10, 0x10, 0),
        translate_op(0, 10, 0x10, 1),
        protect_op(0, 100, 3, RO, 0),             # splits the block
        unmap_op(0, 510, 4),                      # across the block's end
        map_op(0x01, 5, 3, 77, UXN),              # kernel half
        translate_op(1, 5, 0, 0),
        tlbi_op(4, 0, 0, 0),
        check_op(),
        unmap_op(0x80, 0, 1024),
    ])
    write("mmu_ops", "k4_kernel_blocks_split", u8(0x40 | 0x10) + u8(0) + u8(3) + ops)
    # 16 KiB granule, three processes, context switches, injected failures, hogs.
    ops = b"".join([
        map_op(0, 1, 40, 1, EL0),
        switch_op(1),
        map_op(1, 1, 40, 500, EL0 | RO),
        translate_op(0, 2, 8, 0),
        fail_op(1),
        map_op(2, 3000, 1500, 0, 0),
        hog_op(0x0F),
        map_op(1, 6000, 2048, 3, PXN),
        hog_op(0x8F),
        switch_op(0),
        translate_op(0, 2, 8, 0),
        unmap_op(0x81, 2048, 8),
        check_op(),
    ])
    write("mmu_ops", "k16_three_processes_failures", u8(1 | (1 << 2) | (3 << 4)) + u8(0x24) + u8(5) + ops)
    # 64 KiB granule, two processes, garbage RAM, no block mappings, TLBIs.
    ops = b"".join([
        map_op(0, 0, 64, 0, EL0 | NOAF),
        translate_op(0, 1, 0x20, 0),
        protect_op(0, 0, 64, 1 << 8, 0),           # set AF
        translate_op(0, 1, 0x20, 0),
        map_op(1, 8192, 100, 1, 0x0003 | EL0),     # Device memory
        switch_op(1),
        translate_op(0, 8193, 3, 0x20),           # unaligned 4-byte Device read
        tlbi_op(6, 8192, 1, 0x4000),
        tlbi_op(0x28, 0, 0, 0, (0x101 << 48) | 0x2000),
        blocks_op(0x80),
        unmap_op(1, 8192, 50),
        check_op(),
    ])
    write("mmu_ops", "k64_garbage_ram_device", u8(2 | (2 << 4) | 0x80) + u8(0x01) + u8(0x87) + ops)
    # Refused calls: unaligned, out of range, owned attribute bits, zero length.
    ops = b"".join([
        bad_op(0, 0, 0x1001, 0x1000, 0, 0),
        bad_op(0, 0, 0x1000, 0x1000, 0x123, 0),
        bad_op(0, 0, 0x1000, 0x1000, 0x2000, 3),
        bad_op(0, 1, 0xFFFF_0000_0000_0000, 0x1000, 0, 0),
        bad_op(0, 2, 0x1000, 0, 0, 0),
        bad_op(0, 2, 0x1000, 0x1000, 0, 2),
        bad_op(0, 0, 0x1000, 0x1000, (1 << 48) - 0x1000, 0),
        bad_op(0, 1, 0xFFFF_FFFF_FFFF_F000, 0x2000, 0, 0),
        map_op(0x00, 4095, 2048, 0, 0),
    ])
    write("mmu_ops", "refused_calls", u8(0x10) + u8(1) + u8(0) + ops)


# ----- maps_parse ---------------------------------------------------------------------


def maps_seeds():
    td = os.path.join(ROOT, "src", "linux", "maps_text", "testdata")
    runs = open(os.path.join(td, "spec_maps_runs.txt")).read().split("\n\n")
    picked = 0
    for i, run in enumerate(runs):
        text = run.strip("\n") + "\n"
        if len(text.splitlines()) < 3 or picked >= 6:
            continue
        sixteen = "7ffff7ff0000-" in text or (
            "0048c000-00490000 r--p 0008c000 00:02 7" in text and "004ac000" in text)
        fmt = 3 if sixteen else 2
        if "[vsyscall]" in text:
            fmt = 0
        write("maps_parse", "spec_run_%02d" % i, u8(fmt) + u8(6 << 1) + u8(0) + text.encode())
        # The same listing imported in two parts into one tree.
        write("maps_parse", "spec_run_%02d_split" % i,
              u8(fmt) + u8(6 << 1) + u8(2) + text.encode())
        picked += 1
    for name, fmt in (("smaps_arm64_6_1.txt", 1), ("smaps_arm64_6_12_16k.txt", 3)):
        text = open(os.path.join(td, name)).read()
        write("maps_parse", name[:-4], u8(fmt) + u8(1 | (6 << 1)) + u8(0) + text.encode())
    # An x86 smaps entry with a KSM line and a padded THPeligible (rendered format).
    smaps = (
        "7ffff7ff4000-7ffff7ff7000 rw-p 00000000 00:00 0 \n"
        "Size:                 12 kB\nKernelPageSize:        4 kB\nMMUPageSize:           4 kB\n"
        "Rss:                   8 kB\nPss:                   8 kB\nPss_Dirty:             8 kB\n"
        "Shared_Clean:          0 kB\nShared_Dirty:          0 kB\nPrivate_Clean:         0 kB\n"
        "Private_Dirty:         8 kB\nReferenced:            8 kB\nAnonymous:             8 kB\n"
        "KSM:                   0 kB\nLazyFree:              0 kB\nAnonHugePages:         0 kB\n"
        "ShmemPmdMapped:        0 kB\nFilePmdMapped:         0 kB\nShared_Hugetlb:        0 kB\n"
        "Private_Hugetlb:        0 kB\nSwap:                  0 kB\nSwapPss:               0 kB\n"
        "Locked:                0 kB\nTHPeligible:           0\nVmFlags: rd wr mr mw me ac \n"
    )
    write("maps_parse", "smaps_x86_6_18", u8(0) + u8(1 | (6 << 1)) + u8(0) + smaps.encode())
    # The seed notes' listing: padding lost in transit, dashes turned into en/em dashes.
    seed = open(os.path.join(td, "seed_000.txt")).read()
    norm = seed.replace("\u2013", "--").replace("\u2014", "---")
    lines = norm.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("*** memory map after")) + 1
    block = []
    for l in lines[start:]:
        if " 00000000 " in l or " fd:00 " in l:
            block.append(l)
        else:
            break
    write("maps_parse", "seed_notes_unpadded", u8(2) + u8(6 << 1) + u8(0) + ("\n".join(block) + "\n").encode())
    write("maps_parse", "seed_notes_raw", u8(2) + u8(6 << 1) + u8(0) + seed[:1500].encode())
    # Too few slots, and an overlap with what the first part imported.
    two = ("00010000-00012000 rw-p 00000000 00:00 0 \n"
           "00012000-00013000 r--p 00000000 08:01 5                                  /f\n"
           "00011000-00014000 rw-p 00000000 00:00 0                                  [heap]\n")
    write("maps_parse", "overlap_second_part", u8(2) + u8(6 << 1) + u8(2) + two.encode())
    write("maps_parse", "too_few_slots", u8(2) + u8(1 << 1) + u8(0) + two.encode())


# ----- mm_ops ---------------------------------------------------------------------------
# cfg: bits 0-1 preset (arm64 6.1, arm64 6.12 52-bit, arm64 6.12 16K, x86_64 6.18),
# bits 2-3 RAM (16, 24, 32, 64 MiB; +32 MiB with 16K pages), bits 4-5 THP (preset, never,
# madvise, always), bit 6 48-bit VA on arm64 6.12. knobs: bit 0 small max_map_count (from
# the third byte), 1 legacy layout, 2 overcommit never, 3 flip CAP_SYS_RAWIO, 4 MTE CPU,
# bits 5-6 stack rlimit (preset, 128K, unlimited, 1G).

def mm_header(preset, ram=0, thp=0, va48=False, knobs=0, map_count=0):
    return u8(preset | (ram << 2) | (thp << 4) | (0x40 if va48 else 0)) + u8(knobs) + u8(map_count)


def a_slot(i=0, off=0):
    """An earlier mmap result (0 = latest) plus `off` pages (-128..127)."""
    return u8(i << 3) + u8(off & 0xff)


def a_raw(v):
    return u8(5) + u64(v)


def a_edge(i):
    return u8(6) + u8(i)


def a_unaligned(i, off):
    return u8((i << 3) | 7) + u16(off)


def l_pages(n):
    assert 1 <= n <= 64
    return u8(n - 1)


def l_pages16(n):
    """16 * n pages."""
    return u8(0x40 | (n - 1))


def l_pmd(n, adj=0):
    """n PMDs (1-4) plus [0, +page, -page, +1][adj]."""
    return u8(0x80 | (adj << 2) | (n - 1))


def l_edge(i):
    """0, 1, u64::MAX, u64::MAX - page + 1, 2^47, TASK_SIZE, page + 1."""
    return u8(0xc0 | i)


def l_raw(v):
    return u8(0xc7) + u64(v)


PRIV, SHARED, SHVAL = 0, 4, 6
NULL, HINT, FIXED, NOREPLACE = 0, 1, 2, 3


def mmap_op(addr, length, prot, typ=PRIV, place=NULL, populate=False, extra=None, anon=True):
    f = typ | (0 if anon else 8) | (place << 4) | (0x40 if populate else 0) | (0x80 if extra is not None else 0)
    out = u8(0) + u8(f)
    if extra is not None:
        out += u8(extra)
    if place != NULL:
        out += addr
    return out + length + u8(prot)


def munmap_op(addr, length):
    return u8(1) + addr + length


def mprotect_op(addr, length, prot):
    return u8(2) + addr + length + u8(prot)


MADV = ["normal", "random", "sequential", "willneed", "dontneed", "free", "remove", "dontfork",
        "dofork", "mergeable", "unmergeable", "hugepage", "nohugepage", "dontdump", "dodump",
        "wipeonfork", "keeponfork", "cold", "pageout", "populate_read", "populate_write",
        "dontneed_locked", "collapse", "hwpoison", "soft_offline", "guard_install", "guard_remove"]


def madvise_op(addr, length, advice):
    b = MADV.index(advice) if isinstance(advice, str) else advice
    return u8(3) + addr + length + u8(b)


def brk_op(mode, arg=b""):
    """mode 0 query, 1 grow by arg pages, 2 shrink by arg pages, 3 address operand."""
    return u8(4) + u8(mode) + arg


R, W, X = 0, 1, 2


def touch_op(kind, pages, addr):
    assert 1 <= pages <= 64
    return u8(5) + u8(((pages - 1) << 2) | kind) + addr


def maps_op():
    return u8(7) + u8(0)


def smaps_op():
    return u8(7) + u8(1)


def mm_seeds():
    rw, rx, r, none = 3, 5, 1, 0
    # arm64 6.12 (52-bit VA), 32 MiB: the README's example, page by page.
    ops = (mmap_op(None, l_pages(64), rw)
           + touch_op(W, 64, a_slot(0))
           + mprotect_op(a_slot(0, 4), l_pages(1), r)
           + touch_op(W, 1, a_slot(0, 4))
           + touch_op(R, 2, a_slot(0, 4))
           + madvise_op(a_slot(0, 8), l_pages(8), "dontneed")
           + madvise_op(a_slot(0, 16), l_pages(8), "free")
           + touch_op(R, 32, a_slot(0))
           + munmap_op(a_slot(0, 20), l_pages(4))
           + maps_op() + smaps_op()
           + mprotect_op(a_slot(0), l_pages(64), rw)
           + munmap_op(a_slot(0), l_pages(64)))
    write("mm_ops", "arm64_6_12_basic", mm_header(1, ram=2) + ops)
    # x86_64 6.18, 16 MiB, THP madvise: huge pages, the huge zero page, then out of memory.
    ops = (mmap_op(None, l_pmd(4), rw)
           + madvise_op(a_slot(0), l_pmd(4), "hugepage")
           + touch_op(R, 1, a_slot(0))
           + touch_op(W, 1, a_slot(0))
           + touch_op(W, 1, a_slot(0, 127))
           + madvise_op(a_slot(0), l_pmd(1), "nohugepage")
           + mprotect_op(a_slot(0, 1), l_pages(1), r)
           + smaps_op()
           + mmap_op(None, l_pages16(64), rw, populate=True)
           + mmap_op(None, l_pages16(64), rw)
           + madvise_op(a_slot(0), l_pages16(64), "populate_write")
           + touch_op(W, 64, a_slot(1))
           + madvise_op(a_slot(1), l_pages16(64), "pageout")
           + smaps_op())
    write("mm_ops", "x86_6_18_thp_oom", mm_header(3, ram=0, thp=2) + ops)
    # arm64 6.12 16K pages: hints, MAP_FIXED(_NOREPLACE) over earlier mappings, a growsdown
    # stack mapping, brk growing and shrinking, exec touches.
    ops = (mmap_op(None, l_pages(16), rx)
           + mmap_op(a_slot(0, 32), l_pages(8), rw, place=HINT)
           + mmap_op(a_slot(1, 4), l_pages(4), rw, place=FIXED)
           + mmap_op(a_slot(2, 2), l_pages(4), rw, place=NOREPLACE)
           + mmap_op(a_slot(2, -64), l_pages(4), rw, place=NOREPLACE)
           + touch_op(X, 16, a_slot(3))
           + mmap_op(None, l_pages(8), rw, extra=0x02 | 0x04)
           + touch_op(W, 2, a_slot(0, -1))
           + brk_op(1, u8(40)) + touch_op(W, 8, a_edge(13))
           + brk_op(2, u8(20)) + brk_op(0)
           + brk_op(3, a_edge(0))
           + maps_op() + smaps_op())
    write("mm_ops", "arm64_16k_fixed_brk_stack", mm_header(2, ram=1) + ops)
    # arm64 6.1: hostile arguments (edge addresses and lengths, garbage prot, flags and
    # advice, no MAP_ANONYMOUS, shared mappings).
    ops = (mmap_op(a_edge(0), l_pages(1), rw, place=FIXED)
           + mmap_op(a_edge(4), l_edge(2), rw, place=FIXED)
           + mmap_op(a_edge(8), l_pages(1), rw, place=NOREPLACE)
           + mmap_op(a_raw(0x1234), l_pages(1), rw, place=HINT)
           + mmap_op(None, l_edge(0), rw)
           + mmap_op(None, l_edge(5), rw, extra=0x01)
           + mmap_op(None, l_pages(4), 0x80 | (1 << 3) | rw)
           + mmap_op(None, l_pages(4), 0x80 | (7 << 3) | rw) + u8(29)
           + mmap_op(None, l_pages(4), rw, anon=False)
           + mmap_op(None, l_pages(4), rw, extra=0x20 | 0x80) + u8(22)
           + mmap_op(None, l_pages(8), rw, typ=SHARED)
           + touch_op(W, 8, a_slot(0))
           + mmap_op(None, l_pages(8), rw, typ=SHVAL, populate=True)
           + munmap_op(a_unaligned(0, 1), l_pages(1))
           + munmap_op(a_edge(4), l_edge(1))
           + mprotect_op(a_slot(1), l_edge(2), rw)
           + mprotect_op(a_slot(1), l_pages(2), 0x80 | (3 << 3) | rw)
           + madvise_op(a_slot(1), l_pages(2), 0xf0)
           + madvise_op(a_slot(1), l_pages(2), 0xf8) + u8(0x80)
           + madvise_op(a_slot(1), l_raw(0x3000), "guard_install")
           + touch_op(R, 4, a_slot(1))
           + madvise_op(a_slot(1), l_raw(0x3000), "guard_remove")
           + touch_op(W, 4, a_edge(4))
           + maps_op() + smaps_op())
    write("mm_ops", "arm64_6_1_hostile", mm_header(0, ram=1) + ops)
    # A small max_map_count: alternating protections split VMAs until mmap and mprotect
    # hit the limit (ENOMEM); munmap in the middle needs a split too.
    ops = mmap_op(None, l_pages(64), rw) + touch_op(W, 64, a_slot(0))
    for i in range(0, 60, 2):
        ops += mprotect_op(a_slot(0, i), l_pages(1), r)
    ops += munmap_op(a_slot(0, 5), l_pages(1)) + mmap_op(None, l_pages(1), rw) + maps_op()
    write("mm_ops", "small_map_count", mm_header(1, ram=1, va48=True, knobs=1, map_count=12) + ops)


# ----- script ---------------------------------------------------------------------------

def script_seeds():
    write("script", "readme_example",
          b"buf = mmap NULL 100M rw private,anonymous\nwrite buf 1M\nmprotect buf+8K 4K r\n"
          b"write buf+8K\nmaps\n")
    write("script", "issue_example",
          b"# the seed program\nbuf = mmap NULL 100M rw private,anonymous\nwrite buf 100M\n"
          b"mprotect buf+4K 4K r-x\nmunmap buf 0x6400000\nmaps\n")
    write("script", "x86_thp_smaps",
          b"#!\x03 x86_64 6.18\nh = mmap NULL 8M rw private,anonymous\n"
          b"madvise h 8M hugepage\nread h 2M\nwrite h+2M 2M\nmadvise h+4M 2M MADV_POPULATE_WRITE\n"
          b"madvise h 2M 0x7\nsmaps\n")
    write("script", "arm64_16k_fixed",
          b"#!\x02 arm64 6.12 16K\na = mmap 0x10000000 1M rwx private,anonymous,fixed\n"
          b"b = mmap a+256K 64K r map_private|map_anonymous|map_fixed_noreplace\n"
          b"c = mmap a+2M 64K rw private,anonymous,fixed_noreplace,populate\n"
          b"exec a 256K\nwrite c-16K 32K\nbrk 0\nbrk 0x20000000\nmunmap a 0x40000\nmaps\n")
    write("script", "stack_shared_noreserve",
          b"#!\x00 arm64 6.1\ns = mmap NULL 1M rw private,anonymous,stack,growsdown\n"
          b"write s+1020K 4K\nwrite s-4K\nm = mmap NULL 64K rw shared,anonymous\nwrite m 64K\n"
          b"n = mmap NULL 1G none private,anonymous,noreserve\nread n\n"
          b"madvise m 64K dontneed\nmadvise m 64K free   # a comment\nsmaps\n")
    write("script", "hostile_numbers",
          b"mmap 0 0 rw private,anonymous\nmmap 0xffffffffffffffff 4K rw private,anonymous,fixed\n"
          b"munmap 1 4K\nmprotect 0 0xffffffffffffffff rwx\nmadvise 0x1000 4K 9999\n"
          b"brk 0xffffffffffffffff\nread 0xfffffffffffff000 0x2000\nexec 0\n"
          b"x = mmap NULL 4G rw private,anonymous\nwrite x 16M\n")
    write("script", "unbound_after_failed_mmap",
          b"x = mmap NULL 0 rw private,anonymous\nread x\n")
    write("script", "parse_error_last_line", b"maps\n\nmmap 0 4K rq private\n")
    write("script", "parse_error_unbound_name", b"maps\nmunmap nobody 4K")


if __name__ == "__main__":
    walk_seeds()
    mmu_seeds()
    maps_seeds()
    mm_seeds()
    script_seeds()
    for t in sorted(os.listdir(CORPUS)):
        print(t, len(os.listdir(os.path.join(CORPUS, t))), "files")
