; err_type.asm — operations check their operand types at run time.
    li r0, 1
    list r1
    add r2, r0, r1          ; `add` needs ints or two strings
