; loop: a 10,000,000-iteration integer loop (the sum of 0 .. 9,999,999).
; Pure dispatch and checked arithmetic; no objects.
    li r0, 0                ; i
    li r1, 0                ; sum
top:
    add r1, r1, r0
    add r0, r0, 1
    lt r2, r0, 10_000_000
    jnz r2, top
    print r1                ; 49999995000000
