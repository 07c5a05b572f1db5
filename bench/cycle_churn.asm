; cycle_churn: 1,000,000 two-object cycles (a -> b, b -> a), each dropped
; at once. Refcounting cannot free them; the automatic generational
; collector (default thresholds 700, 10, 10) must.
    li r0, 0                ; i
top:
    new r1, 1               ; a
    new r2, 1               ; b
    store r1, 0, r2         ; a -> b
    store r2, 0, r1         ; b -> a
    del r1
    del r2                  ; both now garbage, held only by each other
    add r0, r0, 1
    lt r3, r0, 1_000_000
    jnz r3, top
    print r0                ; 1000000
