"""The Discourse double at a round's size: a user's groups are found without listing every group's
members (with bench/scale.py's 10,000 members each `GET /u/{username}.json` took 11 ms, 2 ms since;
listing every user while another thread created one also failed the control endpoint)."""

from __future__ import annotations

from commons_sync.devtools.discourse_double import DoubleConfig, RunningDouble


def test_groups_of_a_user_are_the_groups_listing_them():
    with RunningDouble(DoubleConfig()) as forum:
        forum.admin.create_group("lieux")
        forum.admin.create_user("alice", groups=["lieux"], trust_level=2)
        forum.admin.create_user("bruno", trust_level=0)
        forum.admin.create_user("claire", moderator=True)
        forum.admin.create_user("denis", admin=True, groups=["lieux"], trust_level=4)
        double = forum.double.forum
        for user in list(double.users_by_id.values()):
            listed = [g.name for g in sorted(double.groups.values(), key=lambda g: g.id)
                      if user.id in double.group_member_ids(g)]
            assert [g.name for g in double.groups_of(user)] == listed, user.username
        assert "lieux" in forum.admin.user("alice")["groups"] and "lieux" not in forum.admin.user("bruno")["groups"]

