from synthcore.cli.main import main

raise SystemExit(main())
