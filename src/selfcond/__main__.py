from selfcond.cli import main

main()
