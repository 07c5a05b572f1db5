; args: --gc off --stats
; args: --stats
; gc_off.asm — with --gc off, cycles built in a loop are never collected:
; compare "alive at exit" and the generation counts of the two runs.
    li r0, 0
loop:
    new r1, 1
    store r1, 0, r1
    add r0, r0, 1
    lt r2, r0, 2000
    jnz r2, loop
    del r1
