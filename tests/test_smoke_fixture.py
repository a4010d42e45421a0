def test_a_patient_gives_consent_through_the_api(client, sign_up):
    ada = sign_up()
    auth = {"Authorization": ada["Authorization"]}
    given = client.post("/v1/me/consents", headers=auth,
                        json={"consent_type": "telemedicine", "text_version": "2026-11"})
    assert given.status_code == 201, given.text
    mine = client.get("/v1/me/consents", headers={
        **auth, "CareBridge-Wait-For": given.headers["CareBridge-Position"]})
    telemedicine = next(c for c in mine.json() if c["consent_type"] == "telemedicine")
    assert telemedicine["status"] == "given"
