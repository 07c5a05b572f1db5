; gc_generations.asm — three generations, as in CPython. Count 0 is tracked
; allocations minus deallocations; collecting generation g empties the
; younger ones into it, adds one to count g+1, and moves survivors up.
    gcdisable
    list r1
    list r2
    dict r3
    gccount r10, 0
    gccount r11, 1
    gccount r12, 2
    print r10, r11, r12     ; 3 0 0: three new containers
    del r3                  ; a deallocation lowers count 0
    gccount r10, 0
    print r10               ; 2
    gc r4, 0                ; collect generation 0: r1, r2 move to 1
    gccount r10, 0
    gccount r11, 1
    print r4, r10, r11      ; 0 0 1
    ; make r1 a cycle (it is in generation 1 now) and drop it
    push r1, r1
    del r1
    gc r4, 0                ; generation 0 is empty: the cycle is not seen
    print r4                ; 0
    gc r4, 1                ; generations 0 and 1: found
    print r4                ; 1
    ; a young cycle is found by a generation-0 collection
    list r5
    push r5, r5
    del r5
    gc r4, 0
    print r4                ; 1
    gccount r11, 1
    gccount r12, 2
    print r11, r12          ; 1 1: generation-0 collections since the last of 1, generation-1 collections since the last of 2
