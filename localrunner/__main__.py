from localrunner.runner import main

raise SystemExit(main())
