//! The kernel's error numbers (`include/uapi/asm-generic/errno-base.h`, `errno.h`) that the
//! memory-management calls return, with glibc's `strerror` texts.

use core::fmt;

/// An error number as a system call returns it (negated in the kernel, positive in `errno`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum Errno {
    /// `EPERM` (1): "Operation not permitted".
    EPERM = 1,
    /// `ENOENT` (2): "No such file or directory".
    ENOENT = 2,
    /// `EINTR` (4): "Interrupted system call".
    EINTR = 4,
    /// `EIO` (5): "Input/output error".
    EIO = 5,
    /// `E2BIG` (7): "Argument list too long".
    E2BIG = 7,
    /// `ENOEXEC` (8): "Exec format error".
    ENOEXEC = 8,
    /// `EBADF` (9): "Bad file descriptor".
    EBADF = 9,
    /// `EAGAIN` (11): "Resource temporarily unavailable".
    EAGAIN = 11,
    /// `ENOMEM` (12): "Cannot allocate memory".
    ENOMEM = 12,
    /// `EACCES` (13): "Permission denied".
    EACCES = 13,
    /// `EFAULT` (14): "Bad address".
    EFAULT = 14,
    /// `EBUSY` (16): "Device or resource busy".
    EBUSY = 16,
    /// `EEXIST` (17): "File exists".
    EEXIST = 17,
    /// `ENODEV` (19): "No such device".
    ENODEV = 19,
    /// `EINVAL` (22): "Invalid argument".
    EINVAL = 22,
    /// `EOVERFLOW` (75): "Value too large for defined data type".
    EOVERFLOW = 75,
    /// `ELIBBAD` (80): "Accessing a corrupted shared library".
    ELIBBAD = 80,
    /// `EOPNOTSUPP` (95): "Operation not supported".
    EOPNOTSUPP = 95,
    /// `EHWPOISON` (133): "Memory page has hardware error".
    EHWPOISON = 133,
}

impl Errno {
    /// Every variant, in ascending number order.
    pub const ALL: [Errno; 19] = [
        Errno::EPERM,
        Errno::ENOENT,
        Errno::EINTR,
        Errno::EIO,
        Errno::E2BIG,
        Errno::ENOEXEC,
        Errno::EBADF,
        Errno::EAGAIN,
        Errno::ENOMEM,
        Errno::EACCES,
        Errno::EFAULT,
        Errno::EBUSY,
        Errno::EEXIST,
        Errno::ENODEV,
        Errno::EINVAL,
        Errno::EOVERFLOW,
        Errno::ELIBBAD,
        Errno::EOPNOTSUPP,
        Errno::EHWPOISON,
    ];

    /// Returns the positive error number (`errno` after a failed call).
    pub const fn number(self) -> i32 {
        self as i32
    }

    /// Returns the raw system-call return value, `-errno`.
    pub const fn to_syscall_ret(self) -> i64 {
        -(self as i64)
    }

    /// Returns the variant for a positive error number, if it is one of these.
    pub fn from_number(n: i32) -> Option<Errno> {
        Errno::ALL.iter().copied().find(|e| e.number() == n)
    }

    /// Returns the symbolic name (`"EINVAL"`).
    pub const fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::EINTR => "EINTR",
            Errno::EIO => "EIO",
            Errno::E2BIG => "E2BIG",
            Errno::ENOEXEC => "ENOEXEC",
            Errno::EBADF => "EBADF",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EACCES => "EACCES",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::ENODEV => "ENODEV",
            Errno::EINVAL => "EINVAL",
            Errno::EOVERFLOW => "EOVERFLOW",
            Errno::ELIBBAD => "ELIBBAD",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::EHWPOISON => "EHWPOISON",
        }
    }

    /// Returns glibc's `strerror` text (`"Invalid argument"`).
    pub const fn strerror(self) -> &'static str {
        match self {
            Errno::EPERM => "Operation not permitted",
            Errno::ENOENT => "No such file or directory",
            Errno::EINTR => "Interrupted system call",
            Errno::EIO => "Input/output error",
            Errno::E2BIG => "Argument list too long",
            Errno::ENOEXEC => "Exec format error",
            Errno::EBADF => "Bad file descriptor",
            Errno::EAGAIN => "Resource temporarily unavailable",
            Errno::ENOMEM => "Cannot allocate memory",
            Errno::EACCES => "Permission denied",
            Errno::EFAULT => "Bad address",
            Errno::EBUSY => "Device or resource busy",
            Errno::EEXIST => "File exists",
            Errno::ENODEV => "No such device",
            Errno::EINVAL => "Invalid argument",
            Errno::EOVERFLOW => "Value too large for defined data type",
            Errno::ELIBBAD => "Accessing a corrupted shared library",
            Errno::EOPNOTSUPP => "Operation not supported",
            Errno::EHWPOISON => "Memory page has hardware error",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.strerror())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_texts() {
        assert_eq!(Errno::EINVAL.number(), 22);
        assert_eq!(Errno::ENOMEM.to_syscall_ret(), -12);
        assert_eq!(Errno::EEXIST.strerror(), "File exists");
        assert_eq!(Errno::from_number(13), Some(Errno::EACCES));
        assert_eq!(Errno::from_number(0), None);
        for w in Errno::ALL.windows(2) {
            assert!(w[0].number() < w[1].number());
        }
    }
}
