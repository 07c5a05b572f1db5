# live_records: 1,000,000 live 2-element lists held in one list at once.
def main():
    lst = []
    for i in range(1_000_000):
        lst.append([i, i])
    print(len(lst))


main()
