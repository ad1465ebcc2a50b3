() => {
  // The start page's one script, run by Gradio as the page's `js=`: once a person (in this tab or another) opens or
  // creates a project, the server closes the start page and serves that project's page on the same address
  // (app/server.py: pick_project). Every start-page tab then reloads into it: it asks for the page's config each
  // second, and an answer that is another page's (another title, or a refusal: a sign-in made on the start page does
  // not carry over) means the switch has happened. While the server switches, requests fail; they are retried.
  const title = document.title;
  const check = async () => {
    try {
      const answer = await fetch('/config', {cache: 'no-store'});
      if (!answer.ok || (await answer.json()).title !== title) {
        window.location.reload();
        return;
      }
    } catch (error) {
      // the server is switching: try again
    }
    setTimeout(check, 1000);
  };
  setTimeout(check, 1000);
}
