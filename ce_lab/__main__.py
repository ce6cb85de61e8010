from ce_lab.cli import main

main()
