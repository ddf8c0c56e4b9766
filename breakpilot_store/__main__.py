"""``python -m breakpilot_store``: the same CLI as the ``breakpilot-store`` script."""

from .cli import main

if __name__ == "__main__":
    main()
