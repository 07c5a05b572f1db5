; args: --stats --alloc pool
; args: --stats --alloc system
; args: --stats --alloc bump
; alloc_compare.asm — the same churn under the three allocators. Compare
; the --stats reports: the pool serves 48-byte records from one size class
; and reuses freed blocks (LIFO); the bump allocator never reuses, so its
; bytes in use only grow.
    li r0, 0
loop:
    new r1, 2               ; 16-byte header + 2 × 16-byte values = 48 bytes
    list r2
    push r2, r1
    add r0, r0, 1
    lt r3, r0, 10_000
    jnz r3, loop
    len r4, r2
    print r4
