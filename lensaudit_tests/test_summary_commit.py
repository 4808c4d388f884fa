"""``lensaudit summary`` names the commit a home was built at, not only the code's."""

from lensaudit import summary


def test_commit_is_the_homes_and_a_later_summary_says_so(monkeypatch):
    monkeypatch.setattr(summary.provenance, "git_commit", lambda: "34fc85f0123456789abcdef0123456789abcdef0")
    assert summary._commit_of("34fc85f0123456789abcdef0123456789abcdef0") == "34fc85f"
    assert summary._commit_of("d8e88000ab14e2d6022842255b9d5598309d9b9a+dirty") == "d8e8800+dirty (summarised at 34fc85f)"
    assert summary._commit_of(None) == "unknown (summarised at 34fc85f)"
