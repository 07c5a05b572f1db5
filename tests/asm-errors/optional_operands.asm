; Instructions with optional operands or a register list: too few or too
; many operands are assembly errors, never left to the verifier.
    gc
    gc r0, 1, 2
    call r0
    call
    ret r0, r1
    call r0, f, r1
    call r0, g
.func f
    ret
.end
.func g 1
    ret r0
.end
