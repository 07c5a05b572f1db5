# cycle_churn: 1,000,000 two-object cycles (a -> b, b -> a), each dropped
# at once and left to the automatic cycle collector.
def main():
    i = 0
    for i in range(1, 1_000_001):
        a = [None]
        b = [a]
        a[0] = b
        del a, b
    print(i)


main()
