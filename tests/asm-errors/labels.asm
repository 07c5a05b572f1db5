; undefined (misspelled) and duplicate labels; labels are per function
loop:
    jmp lop
loop: halt
.func f
    jmp loop
.end
