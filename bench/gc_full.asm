; gc_full: 1,000,000 live tracked records in a list, then 10 full
; collections that find nothing: the per-object cost of a full collection
; (trial deletion over every tracked object). Prints the list length and
; the sum of the collections' results (0: everything is reachable).
    list r0
    li r1, 0                ; i
build:
    new r2, 2
    store r2, 0, r1
    push r0, r2
    add r1, r1, 1
    lt r3, r1, 1_000_000
    jnz r3, build
    del r2
    li r4, 0                ; collections run
    li r5, 0                ; sum of collected counts
collect:
    gc r6, 2
    add r5, r5, r6
    add r4, r4, 1
    lt r3, r4, 10
    jnz r3, collect
    len r7, r0
    print r7, r5            ; 1000000 0
