"""``python -m scaling.random_features``: the regimes report (same as ``idest regimes``)."""

from scaling.random_features._report import main

raise SystemExit(main())
