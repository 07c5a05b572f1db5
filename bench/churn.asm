; churn: 5,000,000 short-lived 4-slot records. Each `new` overwrites r1,
; releasing the previous record, whose count drops to 0: it is freed at
; once. Allocator fast path plus refcount traffic.
    li r0, 0                ; i
top:
    new r1, 4               ; frees the previous record
    store r1, 0, r0
    store r1, 1, r0
    store r1, 2, r0
    store r1, 3, r0
    add r0, r0, 1
    lt r2, r0, 5_000_000
    jnz r2, top
    load r3, r1, 3
    print r3                ; 4999999: the last record's last slot
