/*
 * A stand-in bcryptprimitives.dll for running Rust programs under wine 8.
 *
 * Rust's standard library (1.78 and later) imports ProcessPrng from
 * bcryptprimitives.dll to seed HashMap's RandomState. Windows 10 and later
 * have it; wine 8 does not, so every Rust executable fails to load there
 * (status 53). This DLL exports ProcessPrng and fills the buffer with
 * RtlGenRandom, which advapi32 exports as SystemFunction036 and wine
 * implements. It is for test runs under wine only, never shipped.
 *
 * Build (test.sh does): x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll
 *   bcryptprimitives.c bcryptprimitives.def -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Always returns TRUE, as the real one documents; a failing source aborts. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            ExitProcess(3);
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
