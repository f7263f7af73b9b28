/* Wine 8 ships no bcryptprimitives.dll, but Rust's std (1.78 and later) imports
 * ProcessPrng from it, so every Rust program fails to load under Wine 8 without this.
 * ProcessPrng fills the buffer from the system RNG and never fails on Windows; here it
 * forwards to BCryptGenRandom, which Wine has. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
