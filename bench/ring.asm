; ring: a 1,000,000-node ring of 2-slot records (value, next; the last
; node points back to the first). Drop the external references, then one
; full collection: trial deletion over 1,000,000 objects that all survived
; into generation 2.
    li r0, 0                ; i
    new r1, 2               ; first
    store r1, 0, r0
    mov r2, r1              ; prev
    li r0, 1
build:
    new r3, 2
    store r3, 0, r0
    store r2, 1, r3         ; prev.next = node
    mov r2, r3
    add r0, r0, 1
    lt r4, r0, 1_000_000
    jnz r4, build
    store r2, 1, r1         ; close the ring
    del r1
    del r2
    del r3
    gc r5, 2
    print r5                ; 1000000: the whole ring was unreachable
