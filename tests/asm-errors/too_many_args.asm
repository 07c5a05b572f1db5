; calls pass at most 16 arguments
    call r0, f, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16, r17
.func f 17
.end
