; live_records: 1,000,000 live 2-slot records held in one list at once
; (for peak memory: object header + slots per record, plus the list).
    list r0
    li r1, 0                ; i
top:
    new r2, 2
    store r2, 0, r1
    store r2, 1, r1
    push r0, r2
    add r1, r1, 1
    lt r3, r1, 1_000_000
    jnz r3, top
    len r4, r0
    print r4                ; 1000000
