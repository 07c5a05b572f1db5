; err_div_zero.asm — a runtime error inside a call: the message, the
; failing line with a caret, and the call stack (innermost first). Exit 1.
    li r0, 10
    li r1, 0
    call r2, ratio, r0, r1
    print r2
.func ratio 2
    div r2, r0, r1
    ret r2
.end
