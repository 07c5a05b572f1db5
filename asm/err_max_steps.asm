; args: --max-steps 1000
; err_max_steps.asm — an infinite loop ends when the instruction budget
; (--max-steps) runs out.
    li r0, 0
spin: add r0, r0, 1
    jmp spin
