from medclass.cli import main

main()
