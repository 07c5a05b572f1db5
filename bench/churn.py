# churn: 5,000,000 short-lived 4-element lists (CPython's mutable record),
# each freed by refcounting when the next one replaces it.
def main():
    r = None
    for i in range(5_000_000):
        r = [i, i, i, i]
    print(r[3])


main()
