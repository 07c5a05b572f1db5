; double_decref.asm — releasing a freed object is caught too: here the
; register's own release at exit would be a double free.
    list r1
    decref r1               ; count 0: freed; r1 now dangles
    li r2, 1
    print r2                ; 1
    del r1                  ; use of freed object #1 (releasing it again)
