from adc.cli import main

main()
