from emergentlab.cli import main

main()
