from oc_synth.cli import main

main()
