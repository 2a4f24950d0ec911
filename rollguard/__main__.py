from rollguard.cli import main

main()
