# loop: a 10,000,000-iteration integer loop (the sum of 0 .. 9,999,999).
def main():
    s = 0
    for i in range(10_000_000):
        s += i
    print(s)


main()
