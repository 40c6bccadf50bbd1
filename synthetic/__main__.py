"""python -m synthetic --out DIR --num-images N --seed S (from the checkout's root; or
tools/make_synthetic.py from anywhere)"""

from synthetic.export import main

if __name__ == "__main__":
    main()
