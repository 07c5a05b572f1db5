; err_pop_empty.asm — popping an empty list is an error (Python's
; IndexError); the list and everything else are still released cleanly.
    list r1
    li r2, 1
    push r1, r2
    pop r3, r1
    print r3, r1            ; 1 []
    pop r3, r1
