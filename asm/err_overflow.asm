; err_overflow.asm — arithmetic is checked: i64 overflow is a runtime error,
; not a silent wrap.
    li r0, 3_037_000_499    ; floor(sqrt(i64::MAX))
    mul r1, r0, r0
    print r1                ; 9223372030926249001: still fits
    add r0, r0, 1
    mul r1, r0, r0          ; 3,037,000,500² does not
    print r1
