"""An ARM PrimeCell PL061 GPIO controller as a petard device plugin."""

from petard_pl061.device import PIN_COUNT, Pl061, Pl061Options

__all__ = ["PIN_COUNT", "Pl061", "Pl061Options"]
