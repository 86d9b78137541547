DROP TABLE IF EXISTS ace_playbook_versions;
