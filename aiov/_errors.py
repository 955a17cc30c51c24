"""Exception types. They subclass RuntimeError so code written for OpenVINO,
which raises RuntimeError for these cases, keeps working."""


class InputError(ValueError, RuntimeError):
    """Bad input: an unknown name or index, a wrong shape, rank or dtype, a
    missing input, an array that cannot be shared."""


class PortError(InputError, KeyError):
    """No such input or output: an unknown name, an index out of range, a port of another
    model. A KeyError too, so results mappings (OVDict) behave as mappings do."""

    def __str__(self):  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class InputTypeError(InputError, TypeError):
    """Inputs of a kind infer() does not take (neither a mapping, a sequence nor array data)."""


class PortKeyTypeError(PortError, TypeError):
    """A port selected by a key that is no index, name or port (a float, say)."""


class BusyError(RuntimeError):
    """The request is running an inference; wait for it first."""


class CancelledError(RuntimeError):
    """The inference was cancelled before it finished."""


class JobError(RuntimeError):
    """One or more jobs of an AsyncInferQueue failed (inference or callback).

    ``errors`` lists ``(job_id, userdata, exception)``; the first exception is
    also the ``__cause__``."""

    def __init__(self, errors):
        self.errors = list(errors)
        first = self.errors[0]
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"job {first[0]} failed: {type(first[2]).__name__}: {first[2]}{more}")
        self.__cause__ = first[2]
