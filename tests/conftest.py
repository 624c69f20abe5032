import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The test nets are small: one thread is faster than two fighting for 2 cores, and timings
    are steadier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
