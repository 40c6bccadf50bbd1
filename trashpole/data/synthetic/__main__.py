"""python -m trashpole.data.synthetic --out DIR --num-images N --seed S"""

from trashpole.data.synthetic.export import main

if __name__ == "__main__":
    main()
