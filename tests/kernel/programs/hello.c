/* A small program for the exec cross-check: built static, static-pie, PIE and non-PIE,
 * with a bss large enough for an anonymous bss VMA, and data so that the RW segment has
 * both file and bss parts. */
static char bss[300000];
int data = 42;

int main(int argc, char **argv)
{
    bss[argc] = (char)data;
    return bss[1] == 0 && argv[0] != 0;
}
