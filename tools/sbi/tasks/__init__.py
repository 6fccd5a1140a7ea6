r"""Built-in SBI tasks: importing this package imports every task module in it, which registers its tasks with
:func:`tools.sbi._task.register_task`."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
