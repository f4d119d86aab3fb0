from spravka.cli import main

main()
