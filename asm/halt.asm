; halt.asm — `halt` stops the program from anywhere, releasing every frame.
; expect: before / inside, then nothing more
    li r0, 1
    print r0                ; 1
    call r1, deep, r0
    print r1                ; never reached
.func deep 1
    add r0, r0, 1
    lt r1, r0, 4
    jz r1, stop
    call r2, deep, r0
    ret r2
stop:
    print r0                ; 4
    halt
.end
