from ralph_tui.cli import main

raise SystemExit(main())
