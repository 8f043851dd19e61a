from rea_cli.cli.main import main

main()
