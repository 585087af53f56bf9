from bulkinvoke.cli.app import main

main()
