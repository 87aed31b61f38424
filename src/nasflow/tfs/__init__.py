"""TFS-Eval: architectures trained from scratch, as released (`format` reads them) or built
from this workflow's own runs (`build`)."""
