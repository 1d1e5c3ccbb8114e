import pytest
from report_fixtures import make_full_run


@pytest.fixture(scope="session")
def full_run(tmp_path_factory):
    return make_full_run(tmp_path_factory.mktemp("run"), tmp_path_factory.mktemp("inputs"))
