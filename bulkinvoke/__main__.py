from bulkinvoke.cli import main

main()
