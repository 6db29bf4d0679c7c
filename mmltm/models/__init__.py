from . import backbones  # noqa: F401
from . import necks  # noqa: F401
from . import heads  # noqa: F401
from . import losses  # noqa: F401
from . import classifiers  # noqa: F401
