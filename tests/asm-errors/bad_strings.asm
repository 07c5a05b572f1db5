; string escapes and termination
    str r1, "bad \q escape"
    str r2, "\xZZ"
    str r3, "\xff is not ascii"
    str r4, "never closed
